/** Imported first: the benchmark's own output is its tables; the SDK's and the cloud's logs at error only. */
process.env.LOG_LEVEL ??= 'error';
