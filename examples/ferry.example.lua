-- ferry configuration: a Lua file that returns a table.
-- Secrets never live in this file: give them as env("NAME") or file("PATH").
-- Relative paths are resolved against this file's directory.
return {
  state = { path = "/var/lib/ferry/ferry.db" },   -- SQLite, created 0600
  workers = 4,                                     -- jobs run in parallel, one per worker
  log = { level = "info", format = "json" },       -- "text" for a terminal

  plugins = { dir = "/usr/lib/x86_64-linux-gnu/ferry/plugins" },
  mappings = {
    dir = "/usr/share/ferry/mappings",
    lua_path = "/usr/share/ferry/lua",
    enabled = { "customer_to_contact" },
  },

  -- BigCommerce calls https://<your host>/webhooks/bigcommerce (TLS on 443
  -- in front of this listener; see docs/architecture.md).
  webhooks = { address = "127.0.0.1", port = 8080, max_body = 1048576, dedupe_window = 600 },
  poll = { interval = 300 },                       -- seconds; the safety net behind webhooks
  retry = { max_attempts = 8, base_delay = 1, max_delay = 600 },
  http = { timeout = 30 },

  connectors = {
    bigcommerce = {
      store_hash = "abc123",
      access_token = env("FERRY_BC_ACCESS_TOKEN"),
      webhook_secret = env("FERRY_BC_WEBHOOK_SECRET"),
      -- api_base = "https://api.bigcommerce.com",   -- a sandbox, proxy or simulator
    },
    sap_sales = {
      service_root = "https://my000000.crm.ondemand.com/sap/c4c/odata/v1/c4codataapi/",
      username = "FERRY_TECH_USER",
      password = file("/etc/ferry/sap_password"),
    },
  },
}
