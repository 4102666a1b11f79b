/**
 * (d) fastify + @fastify/cookie + @fastify/session with the same
 * connect-redis store as the express server; `saveUninitialized: false` and
 * `rolling: false`. (The default `rolling: true` saves the whole session on
 * every request that carries one — a `SET` even on reads; `rolling: false`
 * writes only modified sessions, the like-for-like setting.)
 */
import fastifyCookie from "@fastify/cookie"
import fastifySession from "@fastify/session"
import RedisStore from "connect-redis"
import Fastify from "fastify"
import { Redis } from "ioredis"
import { cookieName, cookieSecret, idleTimeoutMs, port, redisUrl, storedValue } from "./config.js"

declare module "fastify" {
  interface Session {
    value?: string
    counter?: number
  }
}

const redis = new Redis(redisUrl)
const app = Fastify({ logger: false })

await app.register(fastifyCookie)
await app.register(fastifySession, {
  store: new RedisStore({ client: redis, prefix: "bench-fastify:" }) as unknown as fastifySession.SessionStore,
  secret: cookieSecret,
  cookieName,
  saveUninitialized: false,
  rolling: false,
  cookie: { httpOnly: true, secure: false, sameSite: "lax", path: "/", maxAge: idleTimeoutMs }
})

app.get("/setup", async (request, reply) => {
  request.session.set("value", storedValue)
  request.session.set("counter", 0)
  return reply.type("text/plain").send("ok")
})
app.get("/get", async (request, reply) => reply.type("text/plain").send(request.session.get("value") ?? ""))
app.get("/counter", async (request, reply) =>
  reply.type("text/plain").send(String(request.session.get("counter") ?? 0)))
app.get("/incr", async (request, reply) => {
  const counter = (request.session.get("counter") ?? 0) + 1
  request.session.set("counter", counter)
  return reply.type("text/plain").send(String(counter))
})
app.get("/plain", async (_request, reply) => reply.type("text/plain").send("plain"))

await app.listen({ port, host: "127.0.0.1" })
const stop = () => {
  void app.close().then(() => redis.quit())
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
