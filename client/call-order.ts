import type { EventDispatcher } from "./events.js";
import { toLarderError } from "./errors.js";

/** How the methods of `data` run their calls: errors become LarderErrors, and calls keep the order they were made in. */
export interface CallOrder {
  /** A read (or any call): run after the writes still waiting for the event stream, if any. */
  call<T>(body: () => Promise<T>): Promise<T>;
  /** A write made after `on()` returns must reach its handlers: it is sent once the stream has its start. */
  write<T>(body: () => Promise<T>): Promise<T>;
}

/** `events()`: the client's event dispatcher, once `on()` made one. */
export function callOrder(events: () => EventDispatcher | undefined): CallOrder {
  const run = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (error) {
      throw toLarderError(error);
    }
  };
  const after = <T>(gate: Promise<unknown>, body: () => Promise<T>): Promise<T> => gate.then(() => run(body));
  /**
   * While writes wait for the event stream's start, every later call waits
   * behind them: calls leave, and pipelines apply them, in the order they were made.
   */
  let waiting: Promise<unknown> | undefined;
  const call = <T>(body: () => Promise<T>): Promise<T> => (waiting ? after(waiting, body) : run(body));
  const write = <T>(body: () => Promise<T>): Promise<T> => {
    const dispatcher = events();
    if (!dispatcher || dispatcher.hasStarted) return call(body);
    const gate = Promise.all([waiting, dispatcher.started()]);
    waiting = gate;
    void gate.then(() => {
      if (waiting === gate) waiting = undefined;
    });
    return after(gate, body);
  };
  return { call, write };
}
