"""Real exchanges behind the ExchangePort, through ccxt. Raw payloads never leave this package."""
