/**
 * A small to-do app written the @ampt/data way. The only Larder-specific
 * line is where `data` comes from; with @ampt/data it would be
 * `import { data } from "@ampt/data"`.
 *
 *   npm start                      # in one terminal
 *   npx tsx examples/todo.ts       # in another (LARDER_URL to point elsewhere)
 */
import { createData } from "../client/index.js";

const data = createData({ url: process.env.LARDER_URL ?? "http://127.0.0.1:4150", apiKey: process.env.LARDER_API_KEY });

interface Todo {
  title: string;
  done: boolean;
  doneCount?: number;
}

async function main(): Promise<void> {
  data.on(["created:todos:*", "updated:todos:*"], async ({ name, item }) => {
    console.log(`event: ${name} ${item.key}`);
  });
  // Larder's one addition: wait until handlers are connected, so this run sees its own first writes.
  await data.ready();

  await data.set<Todo>("todos:001", { title: "Buy milk", done: false }, { label1: "status:open" });
  await data.set<Todo>("todos:002", { title: "Write the README", done: false }, { label1: "status:open" });
  await data.set<Todo>("todos:003", { title: "Ship it", done: false }, { label1: "status:open", ttl: 7 * 24 * 3600 });

  // Complete one: a root-attribute merge, a label change and an atomic counter in one set.
  await data.set("todos:002", { done: true, doneCount: { $add: 1 } }, { label1: "status:done" });

  const open = await data.getByLabel<Todo>("label1", "status:open");
  console.log(
    "open:",
    open.items.map((item) => `${item.key} ${item.value.title}`),
  );

  let page = await data.get<Todo>("todos:*", { limit: 2 });
  for (;;) {
    for (const item of page.items) console.log(`${item.key}: ${item.value.done ? "✔" : " "} ${item.value.title}`);
    if (!page.next) break;
    page = await page.next();
  }

  const meta = await data.get<Todo>("todos:003", { meta: true });
  console.log("todos:003 expires", meta?.ttl?.toISOString());

  await data.remove(["todos:001", "todos:002", "todos:003"]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await data.close();
}

main().catch(async (error: unknown) => {
  console.error(error);
  await data.close();
  process.exitCode = 1;
});
