// ESLint (flat config): typescript-eslint's recommended rules over all of our code.
// Type-aware rules are left off: tsc --strict already runs in `npm run check`, and the
// type-checked set took over a minute here while flagging mostly deliberate patterns.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // Generated, built or written by tools: not ours to lint.
  { ignores: ["gen/", "dist/", "node_modules/", "bench/results/", ".larder/", "test/client/.negative-compat.ts"] },
  // A disable comment that no longer silences anything is an error: it would hide the next real finding.
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    rules: {
      // A variable a closure reads before its one assignment (a test's injected failure, an engine's own observer) cannot be const.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // A leading underscore names what is unused on purpose (a skipped tuple slot, a property left out of a rest copy).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
    },
  },
  {
    // What specs share is written once, in test/support/ (async.ts, errors.ts): a spec does not grow its own copy again.
    files: ["test/**/*.ts"],
    ignores: ["test/support/**"],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "NewExpression[callee.name='Promise'] > ArrowFunctionExpression > CallExpression.body[callee.name='setTimeout'][arguments.0.type='Identifier']",
          message: "Use sleep() from test/support/async.ts.",
        },
        {
          selector: ":matches(FunctionDeclaration, VariableDeclarator)[id.name=/^(sleep|failureOf|reasonOf|eventually)$/]",
          message: "This helper lives in test/support/ (async.ts, errors.ts): import it.",
        },
      ],
    },
  },
  {
    // client/types.ts mirrors @ampt/data's published types, which say `any` (test/client/types-compat.spec.ts pins them).
    files: ["client/types.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    files: ["**/*.cjs"],
    languageOptions: { sourceType: "commonjs", globals: { require: "readonly", module: "writable", process: "readonly", console: "readonly" } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
