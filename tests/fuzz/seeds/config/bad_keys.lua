return { stat = {}, workers = -1, log = { level = 5 }, connectors = { x = env("FERRY_FUZZ_EMPTY") } }
