// dynalite (a DynamoDB implementation, in memory) in a process of its own on
// loopback with an OS-chosen port, for the published @ampt/data client that is
// the benchmark's peer. Prints `dynalite listening on http://127.0.0.1:PORT`;
// SIGTERM stops it. (Its own CLI cannot take port 0: it reads 0 as "unset".)
const dynalite = require("dynalite");

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.listen(0, "127.0.0.1", () => {
  console.log(`dynalite listening on http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
