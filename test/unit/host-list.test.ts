import { describe, expect, it } from "vitest";
import { splitHosts } from "../../src/source/host-list.js";

describe("libpq host lists in --database-url", () => {
  it("splits hosts, keeps user, path and other parameters as written, and follows the read-write host by default", () => {
    expect(splitHosts("postgres://u:p@a:5432,b:5433/db?sslmode=require&options=-c%20x=1")).toEqual({
      urls: ["postgres://u:p@a:5432/db?sslmode=require&options=-c%20x=1", "postgres://u:p@b:5433/db?sslmode=require&options=-c%20x=1"],
      attrs: "read-write",
    });
  });
  it("takes target_session_attrs out of the URL (it is no server setting)", () => {
    expect(splitHosts("postgresql://a,b/db?target_session_attrs=any&application_name=x")).toEqual({
      urls: ["postgresql://a/db?application_name=x", "postgresql://b/db?application_name=x"],
      attrs: "any",
    });
    expect(splitHosts("postgres://a:1/db")).toEqual({ urls: ["postgres://a:1/db"], attrs: "any" });
  });
  it("refuses an empty host and an unknown target_session_attrs", () => {
    expect(() => splitHosts("postgres://a,,b/db")).toThrow(/empty/);
    expect(() => splitHosts("postgres://a,b/db?target_session_attrs=prefer-nothing")).toThrow(/not one of any, read-write/);
  });
});
