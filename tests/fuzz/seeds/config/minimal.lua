return {
  state = { path = "ferry.db" },
  connectors = { bigcommerce = { store_hash = "abc", access_token = env("FERRY_FUZZ_TOKEN") } },
}
