import { EventEmitter, on } from "node:events";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/grpc/health/v1/health_pb.js";

/**
 * grpc.health.v1: the server as a whole ("") and each service it serves.
 * NOT_SERVING until the engine is open and again once shutdown starts, so
 * load balancers stop sending traffic before the port closes.
 */
export class HealthStatus {
  private serving = false;
  private readonly changes = new EventEmitter();

  constructor(private readonly services: ReadonlySet<string>) {
    this.changes.setMaxListeners(0);
  }

  setServing(serving: boolean): void {
    if (this.serving === serving) return;
    this.serving = serving;
    this.changes.emit("change");
  }

  /** undefined: a service this server does not have. */
  statusOf(service: string): Status | undefined {
    if (service !== "" && !this.services.has(service)) return undefined;
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }

  register(router: ConnectRouter, shutdownSignal: AbortSignal): void {
    const health = this;
    router.service(Health, {
      check: (request) => {
        const status = health.statusOf(request.service);
        if (status === undefined) throw new ConnectError(`Unknown service '${request.service}'`, Code.NotFound);
        return { status };
      },
      // The protocol says: unknown services are reported as SERVICE_UNKNOWN on Watch, not as an error.
      async *watch(request, context) {
        const signal = AbortSignal.any([context.signal, shutdownSignal]);
        let last: Status | undefined;
        const changes = on(health.changes, "change", { signal });
        try {
          for (;;) {
            const status = health.statusOf(request.service) ?? Status.SERVICE_UNKNOWN;
            if (status !== last) yield { status };
            last = status;
            if (signal.aborted) return;
            await changes.next();
          }
        } catch (error) {
          if (signal.aborted) return;
          throw error;
        }
      },
    });
  }
}
