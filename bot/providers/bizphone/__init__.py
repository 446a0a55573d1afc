"""B3networks' BizPhone robo-call API (seed 004): models, client, provider, sandbox."""
