/**
 * (c) express + express-session + connect-redis (ioredis client), configured
 * as their docs recommend for a Redis store: `resave: false`,
 * `saveUninitialized: false`, the session middleware mounted for the whole app.
 */
import RedisStore from "connect-redis"
import express from "express"
import session from "express-session"
import { Redis } from "ioredis"
import { cookieName, cookieSecret, idleTimeoutMs, port, redisUrl, storedValue } from "./config.js"

declare module "express-session" {
  interface SessionData {
    value: string
    counter: number
  }
}

const redis = new Redis(redisUrl)
const app = express()
app.disable("x-powered-by")
app.disable("etag")

app.use(session({
  store: new RedisStore({ client: redis, prefix: "bench-express:" }),
  secret: cookieSecret,
  name: cookieName,
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, secure: false, sameSite: "lax", path: "/", maxAge: idleTimeoutMs }
}))

app.get("/setup", (req, res) => {
  req.session.value = storedValue
  req.session.counter = 0
  res.type("text/plain").send("ok")
})
app.get("/get", (req, res) => {
  res.type("text/plain").send(req.session.value ?? "")
})
app.get("/counter", (req, res) => {
  res.type("text/plain").send(String(req.session.counter ?? 0))
})
app.get("/incr", (req, res) => {
  const counter = (req.session.counter ?? 0) + 1
  req.session.counter = counter
  res.type("text/plain").send(String(counter))
})
app.get("/plain", (_req, res) => {
  res.type("text/plain").send("plain")
})

const server = app.listen(port, "127.0.0.1")
const stop = () => {
  server.close()
  server.closeAllConnections()
  void redis.quit()
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
