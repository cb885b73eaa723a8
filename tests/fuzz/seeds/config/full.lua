return {
  state = { path = "/var/lib/ferry/ferry.db" },
  workers = 4,
  log = { level = "debug" },
  mappings = { dir = "mappings", enabled = { "customer_to_contact" }, memory_limit = 33554432 },
  webhooks = { address = "127.0.0.1", port = 8080, max_body = 65536, dedupe_window = 600.5 },
  poll = { interval = 300, batch_size = 25 },
  retry = { max_attempts = 8, base_delay = 1, max_delay = 600 },
  http = { timeout = 30, insecure_hosts = { "localhost" } },
  connectors = {
    bigcommerce = { store_hash = "abc123", access_token = env("FERRY_FUZZ_TOKEN"),
                    webhook_secret = file("secret.txt"), page_limit = 250 },
    sap_sales = { service_root = "https://my000000.crm.ondemand.com/sap/c4c/odata/v1/c4codataapi/",
                  username = "U", password = file("secret.txt"), external_id = { ContactCollection = "links" },
                  nested = { deep = { deeper = { 1, 2.5, true, "x" } } } },
  },
}
