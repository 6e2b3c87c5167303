import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "./api-keys.js";

/** With no keys configured, every caller is this one: the default environment, any call. */
export const LOCAL_PRINCIPAL: Principal = { keyId: "local", environment: "default", role: "admin" };

/** Who is calling: set by the auth interceptor, read by handlers to pick the environment. */
export const principalKey = createContextKey<Principal>(LOCAL_PRINCIPAL, { description: "the authenticated caller" });
