/**
 * The Redis harness (test/support/redis-server.ts) the shared-state tests stand on: a real
 * redis-server on a free loopback port, persistence off, that can be inspected over RESP,
 * killed, restarted empty, paused and resumed, and that asks for a password when it has one.
 * Needs `redis-server` on PATH (npm test's pretest installs it); without it these tests fail.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive } from "../support/control-plane/processes.ts";
import { type RedisServer, redisCommand, RedisReplyError, startRedis } from "../support/redis-server.ts";

describe("the Redis harness", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it("runs redis-server on a free loopback port, with persistence off", async () => {
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}/0`);
    expect(isAlive(redis.pid)).toBe(true);
    expect(await redis.command("PING")).toBe("PONG");
    expect(await redis.command("CONFIG", "GET", "save")).toEqual(["save", ""]);
    expect(await redis.command("CONFIG", "GET", "appendonly")).toEqual(["appendonly", "no"]);
    expect(await redis.command("CONFIG", "GET", "bind")).toEqual(["bind", "127.0.0.1"]);
  });

  it("sends commands and parses each kind of RESP2 reply", async () => {
    expect(await redis.command("SET", "a", "1")).toBe("OK");
    expect(await redis.command("GET", "a")).toBe("1");
    expect(await redis.command("INCR", "a")).toBe(2);
    expect(await redis.command("GET", "missing")).toBeNull();
    expect(await redis.command("SET", "text", "héllo\r\nworld")).toBe("OK");
    expect(await redis.command("GET", "text")).toBe("héllo\r\nworld");
    expect(await redis.command("MGET", "a", "missing")).toEqual(["2", null]);
    await expect(redis.command("NOSUCHCOMMAND")).rejects.toThrow(RedisReplyError);
    await expect(redis.command("INCR", "text")).rejects.toMatchObject({ code: "ERR" });
    await redis.command("DEL", "a", "text");
  });

  it("dumps every key with its type, TTL and value", async () => {
    await redis.command("SET", "dump:string", "v");
    await redis.command("PEXPIRE", "dump:string", "60000");
    await redis.command("HSET", "dump:hash", "f1", "a", "f2", "b");
    await redis.command("ZADD", "dump:zset", "2", "two", "1", "one");
    await redis.command("SADD", "dump:set", "y", "x");
    await redis.command("RPUSH", "dump:list", "first", "second");
    const dump = await redis.dump();
    expect(dump.map((k) => k.key)).toEqual([
      "dump:hash",
      "dump:list",
      "dump:set",
      "dump:string",
      "dump:zset",
    ]);
    const byKey = new Map(dump.map((k) => [k.key, k]));
    const string = byKey.get("dump:string");
    expect(string).toMatchObject({ type: "string", value: "v" });
    expect(string?.ttlMs).toBeGreaterThan(50_000);
    expect(string?.ttlMs).toBeLessThanOrEqual(60_000);
    expect(byKey.get("dump:hash")).toEqual({
      key: "dump:hash",
      type: "hash",
      ttlMs: -1,
      value: "f1=a\nf2=b",
    });
    expect(byKey.get("dump:zset")).toMatchObject({ type: "zset", value: "one 1\ntwo 2" });
    expect(byKey.get("dump:set")).toMatchObject({ type: "set", value: "x\ny" });
    expect(byKey.get("dump:list")).toMatchObject({ type: "list", value: "first\nsecond" });
    await redis.command("FLUSHALL");
  });

  it("dumps more keys than one SCAN batch holds", async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `many:${String(i).padStart(4, "0")}`);
    for (let i = 0; i < keys.length; i += 500)
      await redis.command("MSET", ...keys.slice(i, i + 500).flatMap((k) => [k, "1"]));
    const dump = await redis.dump();
    expect(dump.map((k) => k.key)).toEqual(keys);
    await redis.command("FLUSHALL");
  });

  it("is down once killed, and comes back empty on the same port after restart", async () => {
    await redis.command("SET", "before-crash", "1");
    const { port, pid } = redis;
    await redis.kill();
    expect(isAlive(pid)).toBe(false);
    await expect(redis.command("PING")).rejects.toThrow(/ECONNREFUSED/);
    await redis.restart();
    expect(redis.port).toBe(port);
    expect(redis.pid).not.toBe(pid);
    expect(await redis.command("PING")).toBe("PONG");
    expect(await redis.command("GET", "before-crash")).toBeNull();
    expect(await redis.dump()).toEqual([]);
  });

  it("comes back after a clean stop too", async () => {
    await redis.stop();
    await expect(redis.command("PING")).rejects.toThrow(/ECONNREFUSED/);
    await redis.restart();
    expect(await redis.command("PING")).toBe("PONG");
  });

  it("accepts connections but answers nothing while paused, and answers again once resumed", async () => {
    redis.pause();
    try {
      await expect(redisCommand({ port: redis.port, timeoutMs: 500 }, "PING")).rejects.toThrow(
        /no answer within 500 ms/,
      );
    } finally {
      redis.resume();
    }
    expect(await redis.command("PING")).toBe("PONG");
  });

  it("stops a paused server", async () => {
    const server = await startRedis();
    server.pause();
    await server.stop();
    expect(isAlive(server.pid)).toBe(false);
  });
});

describe("the Redis harness with a password", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis({ password: "s3cret" });
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it("refuses commands without AUTH", async () => {
    await expect(redisCommand({ port: redis.port }, "PING")).rejects.toMatchObject({
      name: "RedisReplyError",
      code: "NOAUTH",
    });
    await expect(redisCommand({ port: redis.port, password: "wrong" }, "PING")).rejects.toMatchObject({
      code: "WRONGPASS",
    });
  });

  it("sends AUTH first from command() and dump()", async () => {
    expect(await redis.command("SET", "k", "v")).toBe("OK");
    expect(await redisCommand({ port: redis.port, password: "s3cret" }, "GET", "k")).toBe("v");
    expect(await redis.dump()).toEqual([{ key: "k", type: "string", ttlMs: -1, value: "v" }]);
  });

  it("keeps the password across a restart", async () => {
    await redis.kill();
    await redis.restart();
    await expect(redisCommand({ port: redis.port }, "PING")).rejects.toMatchObject({ code: "NOAUTH" });
    expect(await redis.command("PING")).toBe("PONG");
  });
});

describe("starting Redis", () => {
  it("fails with redis-server's output when it exits at once", async () => {
    const taken = await startRedis();
    try {
      await expect(startRedis({ port: taken.port })).rejects.toThrow(
        /exited with code .*Address already in use/s,
      );
    } finally {
      await taken.stop();
    }
  });

  it("says how to install redis-server when it is not on PATH", async () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      await expect(startRedis()).rejects.toThrow(
        "redis-server is not on PATH: npm test installs it (pretest); or apt-get install redis-server",
      );
    } finally {
      process.env.PATH = path;
    }
  });
});
