/**
 * What each role may call. Roles are given per API key (issue 7); the table
 * is the whole policy, so a reader can check it at a glance. Which
 * environments a key may act on is the other half (see tenancy.ts).
 */
export type Role = "read" | "write" | "watch" | "app" | "admin" | "operator";

export const ROLES: readonly Role[] = ["read", "write", "watch", "app", "admin", "operator"];

/**
 * The role of a key bound to no environment. It manages every environment
 * through AdminService and calls nothing on DataService: a data call needs an
 * environment, and taking one from the request would let the request choose it.
 */
export const OPERATOR: Role = "operator";

// Pipeline is open to every role that reads: each of its operations is checked as the call it stands for.
const READS = ["Get", "BatchGet", "Query", "Count", "History", "Scan", "Namespaces", "Ping", "Pipeline"];
const WRITES = ["Set", "BatchSet", "Add", "Remove", "Seed"];
const EVENTS = ["Watch", "Ack"];

const DATA_METHODS: Record<Role, ReadonlySet<string>> = {
  read: new Set(READS),
  write: new Set([...READS, ...WRITES]),
  watch: new Set([...READS, ...EVENTS]),
  // What an @ampt/data app does (read, write, data.on()) and nothing of AdminService: the least an app needs.
  app: new Set([...READS, ...WRITES, ...EVENTS]),
  admin: new Set([...READS, ...WRITES, ...EVENTS]),
  operator: new Set(),
};

const MANAGES_ENVIRONMENTS: ReadonlySet<Role> = new Set(["admin", "operator"]);

export const DATA_SERVICE = "larder.data.v1.DataService";
export const ADMIN_SERVICE = "larder.admin.v1.AdminService";

/**
 * They say nothing about any environment's data, so every key may ask them;
 * that matters when LARDER_PUBLIC_SERVICES closes them to anonymous callers.
 */
const OPEN_TO_EVERY_ROLE = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

export function roleAllows(role: Role, service: string, method: string): boolean {
  if (service === DATA_SERVICE) return DATA_METHODS[role].has(method);
  if (service === ADMIN_SERVICE) return MANAGES_ENVIRONMENTS.has(role);
  return OPEN_TO_EVERY_ROLE.has(service);
}

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}
