// Lints the Pulumi program, its helpers, the handler and the tests with typescript-eslint's
// recommended rules: the ecosystem's standard, so a newcomer's editor agrees with CI.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "lambda/dist/**", "bin/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  // The page's script runs in the browser: the browser globals it uses, declared here (the `globals`
  // package is only eslint's own dependency). tsc checks every name against lambda/page/tsconfig.json's
  // DOM lib, which is why typescript-eslint turns no-undef off for .ts files.
  {
    files: ["lambda/page/**/*.ts"],
    languageOptions: {
      globals: { window: "readonly", document: "readonly", fetch: "readonly", setInterval: "readonly", clearInterval: "readonly" },
    },
  },
  // The function's public surface: the Pulumi program, the client and the scripts reach lambda/src
  // only through lambda/src/public.ts, so everything else in lambda/src can change freely
  // (test/public-surface.test.ts proves the rule refuses a deep import).
  {
    files: ["client/**", "infra/**", "index.ts", "config.ts", "scripts/**"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [{
          regex: "(^|/)lambda/src(/(?!public(\\.[cm]?[jt]s)?$)|$)",
          message: "Import from lambda/src/public.ts, the function's public surface: export what you need there.",
        }],
      }],
    },
  },
);
