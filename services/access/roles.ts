/**
 * What each role may call. Roles are given per API key (issue 7); the table
 * is the whole policy, so a reader can check it at a glance.
 */
export type Role = "read" | "write" | "watch" | "app" | "admin";

export const ROLES: readonly Role[] = ["read", "write", "watch", "app", "admin"];

const READS = ["Get", "BatchGet", "Query", "Count", "Scan", "Namespaces", "Ping"];
const WRITES = ["Set", "BatchSet", "Add", "Remove", "Seed"];
const EVENTS = ["Watch", "Ack"];

const DATA_METHODS: Record<Role, ReadonlySet<string>> = {
  read: new Set(READS),
  write: new Set([...READS, ...WRITES]),
  watch: new Set([...READS, ...EVENTS]),
  // What an @ampt/data app does (read, write, data.on()) and nothing of AdminService: the least an app needs.
  app: new Set([...READS, ...WRITES, ...EVENTS]),
  admin: new Set([...READS, ...WRITES, ...EVENTS]),
};

export const DATA_SERVICE = "larder.data.v1.DataService";
export const ADMIN_SERVICE = "larder.admin.v1.AdminService";

/**
 * They say nothing about any environment's data, so every key may ask them;
 * that matters when LARDER_PUBLIC_SERVICES closes them to anonymous callers.
 */
const OPEN_TO_EVERY_ROLE = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

export function roleAllows(role: Role, service: string, method: string): boolean {
  if (service === DATA_SERVICE) return DATA_METHODS[role].has(method);
  if (service === ADMIN_SERVICE) return role === "admin";
  return OPEN_TO_EVERY_ROLE.has(service);
}

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}
