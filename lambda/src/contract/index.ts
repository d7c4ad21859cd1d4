/**
 * The contract between the function, the Pulumi program and the `knock` client: settings with
 * their environment variables and limits, the storage key layout, the API's wire shapes and its
 * routes. No dependencies, so every side (and the function's image) can import it.
 */
export * from "./settings";
export * from "./function-env";
export * from "./storage-layout";
export * from "./api";
export * from "./routes";
