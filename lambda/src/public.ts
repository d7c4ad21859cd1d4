/**
 * The function's public surface: the only module the Pulumi program (infra/, config.ts) and the
 * `knock` client (client/) import from lambda/src — an ESLint rule refuses deep imports. Everything
 * here is a contract; anything else in lambda/src may be renamed freely.
 */
export * from "./contract";
