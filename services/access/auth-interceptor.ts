import { Code, type ConnectError, type Interceptor } from "@connectrpc/connect";
import { withReason } from "../errors.js";
import { authenticate, type Principal, type StoredKey } from "./api-keys.js";
import { principalKey } from "./principal.js";
import { OPERATOR, roleAllows } from "./roles.js";

export interface AuthOptions {
  /** undefined: no keys configured, every caller is local (loopback only). */
  readonly keys?: readonly StoredKey[];
  /** Services callable without a key (reflection and health, so grpcurl works). */
  readonly publicServices: ReadonlySet<string>;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The key in an `authorization: Bearer <key>` header; undefined for any other form. */
export function bearerKey(header: string): string | undefined {
  return BEARER.exec(header)?.[1];
}

/**
 * Resolves the caller's API key to an environment and a role before any
 * handler runs. The same header works on gRPC, gRPC-Web and Connect. Neither
 * the key nor its hash ever appears in an error.
 */
export function authInterceptor({ keys, publicServices }: AuthOptions): Interceptor {
  return (next) => async (request) => {
    const service = request.service.typeName;
    if (keys === undefined || publicServices.has(service)) return next(request);
    const header = request.header.get("authorization");
    if (!header) {
      throw withReason("Missing API key: send the header 'authorization: Bearer <key>'", Code.Unauthenticated, "API_KEY_MISSING");
    }
    const presented = bearerKey(header);
    if (presented === undefined) {
      // The header's value is never echoed: it may well be the key itself.
      throw withReason(
        "The authorization header must be 'Bearer <key>' (the word Bearer, a space, then the key)",
        Code.Unauthenticated,
        "API_KEY_MALFORMED",
      );
    }
    const principal = authenticate(keys, presented);
    if (!principal) throw withReason("Unknown API key", Code.Unauthenticated, "API_KEY_UNKNOWN");
    if (!roleAllows(principal.role, service, request.method.name)) throw roleRefusal(principal, service, request.method.name);
    request.contextValues.set(principalKey, principal);
    return next(request);
  };
}

/** PERMISSION_DENIED for a call the key's role does not allow (also for each operation of a Pipeline). */
export function roleRefusal(principal: Principal, service: string, method: string): ConnectError {
  const why = principal.role === OPERATOR ? "; an operator key is bound to no environment, so data calls take a key bound to the environment" : "";
  return withReason(
    `The API key '${principal.keyId}' has the role '${principal.role}', which may not call ${service}/${method}${why}`,
    Code.PermissionDenied,
    "ROLE_NOT_ALLOWED",
  );
}
