import { EventEmitter, on } from "node:events";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { quote } from "../core/errors.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/grpc/health/v1/health_pb.js";
import type { FeedHealth } from "./feed/feed-health.js";

/**
 * grpc.health.v1: the server as a whole ("") and each service it serves.
 * NOT_SERVING until the engine is open and again once shutdown starts, so
 * load balancers stop sending traffic before the port closes; also while an
 * environment's change feed cannot read its log (FeedHealth).
 */
export class HealthStatus {
  private serving = false;
  /** The store failed a call (disk full, read-only, unreachable) and has not answered one since. */
  private storeDown = false;
  private readonly changes = new EventEmitter();

  constructor(
    private readonly services: ReadonlySet<string>,
    private readonly feeds?: FeedHealth,
  ) {
    this.changes.setMaxListeners(0);
    feeds?.changes.on("change", () => this.changes.emit("change"));
  }

  setServing(serving: boolean): void {
    if (this.serving === serving) return;
    this.serving = serving;
    this.changes.emit("change");
  }

  /** undefined: a service this server does not have. */
  statusOf(service: string): Status | undefined {
    if (service !== "" && !this.services.has(service)) return undefined;
    return this.serving && !this.storeDown && this.feeds?.failure === undefined ? Status.SERVING : Status.NOT_SERVING;
  }

  /**
   * Reports NOT_SERVING while the store fails calls with STORE_UNAVAILABLE
   * (a full disk, a read-only directory, MongoDB out of reach), and SERVING
   * again after the next call the store answers: load balancers route
   * around a server that cannot write, and it comes back by itself.
   */
  storeInterceptor(): Interceptor {
    return (next) => async (request) => {
      try {
        const response = await next(request);
        if (this.storeDown && request.service.typeName !== Health.typeName) this.setStoreDown(false);
        return response;
      } catch (error) {
        const failure = ConnectError.from(error);
        const reason = failure.findDetails(ErrorInfoSchema)[0]?.reason;
        if (reason === "STORE_UNAVAILABLE") this.setStoreDown(true);
        else if (this.storeDown && failure.code !== Code.ResourceExhausted && failure.code !== Code.Unavailable) this.setStoreDown(false);
        throw error;
      }
    };
  }

  private setStoreDown(down: boolean): void {
    if (this.storeDown === down) return;
    this.storeDown = down;
    this.changes.emit("change");
  }

  register(router: ConnectRouter, shutdownSignal: AbortSignal): void {
    // watch() is a generator method: its own `this` is the service object, not the HealthStatus.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const health = this;
    router.service(Health, {
      check: (request) => {
        const status = health.statusOf(request.service);
        if (status === undefined) throw new ConnectError(`Unknown service '${quote(request.service)}'`, Code.NotFound);
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
