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
);
