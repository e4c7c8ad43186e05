"""Staff accounts: people sign in with a username and password and get a web session; programs
keep using API keys (geo.auth). Each module holds one job: the tables (models), password hashing
(passwords), the strength policy (policy), sessions and their cookie (sessions), the CSRF token
of cookie writes (csrf), the account actions (service) and their console commands (cli)."""
