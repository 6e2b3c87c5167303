import { useEffect, useState } from "preact/hooks";
import { Environments } from "./environments.js";
import { Explore } from "./explore.js";
import { ItemPage, NewItemPage } from "./item.js";
import { describeError } from "./model.js";
import { formatRoute, parseRoute, queryRoute, type Route } from "./route.js";
import { forgetKey, openSession, storedKey, type Session } from "./session.js";
import { Watch } from "./watch.js";
import { ErrorBox, Loading } from "./widgets.js";

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

type State =
  | { readonly phase: "opening" }
  | { readonly phase: "sign-in"; readonly refused?: string }
  | { readonly phase: "failed"; readonly error: string }
  | { readonly phase: "open"; readonly session: Session };

export function App() {
  const [state, setState] = useState<State>({ phase: "opening" });
  const route = useRoute();

  const open = async (apiKey: string | undefined) => {
    setState({ phase: "opening" });
    try {
      const opened = await openSession(apiKey);
      setState("session" in opened ? { phase: "open", session: opened.session } : { phase: "sign-in", refused: opened.refused });
    } catch (error) {
      setState({ phase: "failed", error: describeError(error) });
    }
  };
  useEffect(() => {
    void open(storedKey());
  }, []);

  const session = state.phase === "open" ? state.session : undefined;
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href={formatRoute(queryRoute())}>
          Larder console
        </a>
        {session && (
          <nav aria-label="Views">
            {session.readsData && (
              <>
                <a
                  href={formatRoute(queryRoute())}
                  aria-current={route.view === "query" || route.view === "item" || route.view === "new" ? "page" : undefined}
                >
                  Explore
                </a>
                <a href={formatRoute({ view: "events", filters: [] })} aria-current={route.view === "events" ? "page" : undefined}>
                  Watch
                </a>
              </>
            )}
            {session.managesEnvironments && (
              <a href={formatRoute({ view: "environments" })} aria-current={route.view === "environments" ? "page" : undefined}>
                Environments
              </a>
            )}
          </nav>
        )}
        {session?.signedIn && (
          <button
            type="button"
            class="sign-out"
            onClick={() => {
              forgetKey();
              setState({ phase: "sign-in" });
            }}
          >
            Sign out
          </button>
        )}
      </header>
      <main id="main">
        {state.phase === "opening" && <Loading what="the console" />}
        {state.phase === "failed" && (
          <section>
            <ErrorBox error={`The service cannot be reached: ${state.error}`} />
            <button type="button" onClick={() => void open(storedKey())}>
              Try again
            </button>
          </section>
        )}
        {state.phase === "sign-in" && <SignIn refused={state.refused} onKey={(key) => void open(key)} />}
        {session && <View route={route} session={session} />}
      </main>
    </div>
  );
}

function View({ route, session }: { readonly route: Route; readonly session: Session }) {
  // A key with no data calls (an operator key) has environments to manage and nothing else.
  if (!session.readsData) return <Environments session={session} />;
  switch (route.view) {
    case "query":
      return <Explore route={route} session={session} />;
    case "item":
      return <ItemPage key={route.key} itemKey={route.key} session={session} />;
    case "new":
      return <NewItemPage key={route.key} initialKey={route.key} session={session} />;
    case "events":
      return <Watch key={route.filters.join("\n")} filters={route.filters} session={session} />;
    case "environments":
      return <Environments session={session} />;
  }
}

function SignIn({ refused, onKey }: { readonly refused?: string; readonly onKey: (key: string) => void }) {
  const [key, setKey] = useState("");
  return (
    <section class="sign-in" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Sign in</h1>
      <p>This server wants an API key. The console keeps it in this tab only (session storage) and sends it only in the authorization header.</p>
      <ErrorBox error={refused} />
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (key.trim() !== "") onKey(key.trim());
        }}
      >
        <label>
          API key
          <input type="password" value={key} onInput={(event) => setKey(event.currentTarget.value)} autoComplete="off" required autoFocus />
        </label>
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </section>
  );
}
