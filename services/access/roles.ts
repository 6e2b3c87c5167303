/**
 * What each role may call. Roles are given per API key (issue 7); the table
 * is the whole policy, so a reader can check it at a glance.
 */
export type Role = "read" | "write" | "watch" | "admin";

export const ROLES: readonly Role[] = ["read", "write", "watch", "admin"];

const READS = ["Get", "BatchGet", "Query", "Scan", "Ping"];
const WRITES = ["Set", "BatchSet", "Add", "Remove", "Seed"];
const EVENTS = ["Watch", "Ack"];

const DATA_METHODS: Record<Role, ReadonlySet<string>> = {
  read: new Set(READS),
  write: new Set([...READS, ...WRITES]),
  watch: new Set([...READS, ...EVENTS]),
  admin: new Set([...READS, ...WRITES, ...EVENTS]),
};

export const DATA_SERVICE = "larder.data.v1.DataService";
export const ADMIN_SERVICE = "larder.admin.v1.AdminService";

export function roleAllows(role: Role, service: string, method: string): boolean {
  if (service === DATA_SERVICE) return DATA_METHODS[role].has(method);
  if (service === ADMIN_SERVICE) return role === "admin";
  return false;
}

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}
