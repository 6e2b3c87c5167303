import http from "node:http";
import { expect } from "chai";
import { useServer } from "../support/server.js";

/** One Connect Ping on the agent's connection; resolves with whether that connection was reused. */
function ping(port: number, agent: http.Agent): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: "127.0.0.1", port, agent, method: "POST", path: "/larder.data.v1.DataService/Ping", headers: { "content-type": "application/json" } },
      (response) => {
        response.resume();
        response.on("end", () => resolve({ status: response.statusCode!, reused: request.reusedSocket }));
      },
    );
    request.on("error", reject);
    request.end("{}");
  });
}

describe("e2e: a busy HTTP/1.1 keep-alive connection is never cut by the head timeout", function () {
  this.timeout(60_000);
  const running = useServer();

  it("calls back to back on one connection for longer than the 10 s head timeout all succeed, and no listener piles up", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const until = Date.now() + 12_000;
      let calls = 0;
      let fresh = 0;
      while (Date.now() < until) {
        const { status, reused } = await ping(running.server.port, agent);
        expect(status).to.equal(200);
        if (!reused) fresh++;
        calls++;
      }
      // One connection for all of them: a cut connection would show as an error or a new one.
      expect(fresh, `new connections over ${calls} calls`).to.equal(1);
      expect(running.server.output()).not.to.contain("MaxListenersExceededWarning");
    } finally {
      agent.destroy();
    }
  });
});
