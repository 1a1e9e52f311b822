/** Imported first: the benchmark's own output is its tables; the SDK's and the cloud's logs stay at warn. */
process.env.LOG_LEVEL ??= 'warn';
