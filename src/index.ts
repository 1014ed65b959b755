/**
 * The library entry of the tera-cdc package (`import { subscribe } from "tera-cdc"`): the client
 * for consumers of the change stream and the OpenTera message library.
 */
export * from "./client/index.js";
export * from "./messages/index.js";
export { formatLsn, type Lsn, parseLsn } from "./lsn.js";
