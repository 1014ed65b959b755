import { describe, expect, it } from "vitest";
import { classifyDatabaseError, ConfigError, FatalError, hasSqlState, isConnectionError, isTransient, SQLSTATE, TransientError } from "../../src/errors.js";

describe("error classes and the one classifier", () => {
  it("tells a lost connection from a refusal by SQLSTATE class or a socket error, not by message text", () => {
    const sql = (code: string) => Object.assign(new Error("x"), { code });
    expect(isConnectionError(sql("08006"))).toBe(true);
    expect(isConnectionError(sql("57P01"))).toBe(true);
    expect(isConnectionError(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isConnectionError(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET", syscall: "read" }))).toBe(true);
    expect(isConnectionError(sql("42501"))).toBe(false);
    expect(isConnectionError(sql("42P01"))).toBe(false);
    // A refusal whose message merely mentions a connection is still a refusal.
    expect(isConnectionError(Object.assign(new Error("connection limit exceeded for role"), { code: "53300" }))).toBe(false);
  });

  it("classifies with context and keeps the cause; already classified errors pass through", () => {
    const lost = new Error("Connection terminated");
    const transient = classifyDatabaseError(lost, "reading the catalog for public.t");
    expect(transient).toBeInstanceOf(TransientError);
    expect(transient.message).toBe("reading the catalog for public.t failed: Connection terminated");
    expect(transient.cause).toBe(lost);
    const refused = classifyDatabaseError(Object.assign(new Error("permission denied"), { code: "42501" }), "x");
    expect(refused).toBeInstanceOf(FatalError);
    expect(isTransient(refused)).toBe(false);
    const config = new ConfigError("setting x: bad");
    expect(classifyDatabaseError(config, "y")).toBe(config);
    expect(config).toBeInstanceOf(FatalError);
    expect(isTransient(new TransientError("t"))).toBe(true);
  });

  it("finds a SQLSTATE on the error or on what caused it, and never in the message", () => {
    const inUse = Object.assign(new Error('replication slot "s" is active for PID 42'), { code: "55006" });
    expect(hasSqlState(inUse, SQLSTATE.objectInUse)).toBe(true);
    expect(hasSqlState(new TransientError("stream lost", { cause: inUse }), SQLSTATE.objectInUse)).toBe(true);
    expect(hasSqlState(new Error('replication slot "s" is active for PID 42'), SQLSTATE.objectInUse)).toBe(false);
    expect(hasSqlState(Object.assign(new Error("x"), { code: "42704" }), SQLSTATE.objectInUse)).toBe(false);
    expect(hasSqlState(undefined, SQLSTATE.undefinedObject)).toBe(false);
  });
});
