/**
 * Errors in each service's own wire format, so that python-openstackclient, openstacksdk and the other
 * clients parse them as they parse the real services':
 *   Nova, Cinder   {"itemNotFound": {"code": 404, "message": "..."}}      (nova/api/openstack/wsgi.py Fault)
 *   Keystone       {"error": {"code": 404, "message": "...", "title": "Not Found"}}
 *   Neutron        {"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}
 *   Glance         a plain-text webob body: "404 Not Found\n\n<message>\n\n   "
 *   Placement      {"errors": [{"status": 404, "title": "Not Found", "detail": "...", "code": "...", "request_id": "..."}]}
 */
import { STATUS_CODES } from 'node:http';
import { isCloudError, type CloudErrorType } from '../cloud/errors';

export type ServiceName = 'identity' | 'compute' | 'image' | 'network' | 'volume' | 'placement';

/** An HTTP error a handler throws; `type` names Neutron's exception class where it matters. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Nova's and Cinder's fault keys by status (nova/api/openstack/wsgi.py `Fault._fault_names`). */
const NOVA_FAULT_NAMES: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

/** The status an embedded-cloud error answers with; the cloud's codes are already the APIs' codes. */
export function statusOf(type: CloudErrorType, code: number): number {
  // Nova answers an over-quota boot with 403 Forbidden ("Quota exceeded for ..."), Cinder with 413.
  return type === 'QuotaExceeded' ? 403 : code;
}

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  contentType: string;
  body: string;
}

/** Turns anything thrown by a handler into the service's error response; unknown errors are a 500. */
export function renderError(service: ServiceName, err: unknown, requestId: string): RenderedError {
  let status = 500;
  let message = 'An unexpected error prevented the server from fulfilling your request.';
  let type: string | undefined;
  let headers: Record<string, string> = {};
  if (err instanceof ApiError) {
    ({ status, message, type, headers } = err);
  } else if (isCloudError(err)) {
    status = statusOf(err.type, err.code);
    message = err.message;
    // A cloud error may name Neutron's exception class (NetworkInUse, SubnetInUse) beside its generic type.
    const neutronType = err.details.neutronType;
    type = typeof neutronType === 'string' ? neutronType : err.type;
  } else if (isFastifyClientError(err)) {
    status = err.statusCode;
    message = err.message;
  }
  return { status, headers, ...formatBody(service, status, message, type, requestId) };
}

function formatBody(
  service: ServiceName,
  status: number,
  message: string,
  type: string | undefined,
  requestId: string,
): { contentType: string; body: string } {
  const title = STATUS_CODES[status] ?? 'Error';
  const json = (value: unknown) => ({ contentType: 'application/json', body: JSON.stringify(value) });
  switch (service) {
    case 'compute':
    case 'volume':
      return json({ [NOVA_FAULT_NAMES[status] ?? 'computeFault']: { code: status, message } });
    case 'identity':
      return json({ error: { code: status, message, title } });
    case 'network':
      return json({ NeutronError: { type: type ?? title.replace(/\s+/g, ''), message, detail: '' } });
    case 'placement':
      return json({
        errors: [{ status, title, detail: message, code: 'placement.undefined_code', request_id: requestId }],
      });
    case 'image':
      return { contentType: 'text/plain; charset=UTF-8', body: `${status} ${title}\n\n${message}\n\n   ` };
  }
}

/** Fastify's own client errors (bad JSON, body too large, unsupported media type) carry a statusCode. */
function isFastifyClientError(err: unknown): err is { statusCode: number; message: string } {
  if (typeof err !== 'object' || err === null || !('statusCode' in err)) return false;
  const code = (err as { statusCode: unknown }).statusCode;
  return typeof code === 'number' && code >= 400 && code < 500;
}
