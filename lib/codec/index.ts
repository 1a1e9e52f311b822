/** Payload encryption for bootflow: keyring, AES-256-GCM codec, data converter, codec server. */
export { Keyring, KeyringError, parseKeyList, KEY_BYTES, type CodecKey } from './keyring';
export {
  KEYS_ENV,
  KEY_FILE_NAME,
  codecKeyFilePath,
  ensureCodecKeyFile,
  loadCodecKeyFile,
  loadKeyring,
  rotateCodecKey,
} from './key-file';
export {
  AesGcmPayloadCodec,
  ENCRYPTED_ENCODING,
  METADATA_KEY_ID,
  PayloadDecryptionError,
  UnencryptedPayloadError,
  encryptedKeyId,
  isEncryptedPayload,
} from './encryption-codec';
export {
  CODEC_TOKEN_ENV,
  CODEC_TOKEN_FILE,
  codecTokenPath,
  ensureCodecToken,
  loadCodecToken,
} from './codec-token';
export { KEY_CHECK_FILE, ensureKeyCheck, keyCheckPath, verifyKeyCheck } from './key-check';
export { FAILURE_CONVERTER_PATH, encryptingDataConverter } from './data-converter';
export { verifyKeyringAgainstHistory, type HistoryCheckResult } from './history-check';
export {
  DEFAULT_UI_ORIGINS,
  SESSION_COOKIE,
  startCodecServer,
  type CodecServerOptions,
  type RunningCodecServer,
} from './codec-server';
