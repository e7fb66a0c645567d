"""ccxt's exceptions translated into the port's error taxonomy (trading.errors).

Reads and writes differ: a timeout on a read is retryable, on a write it is an unknown outcome
that must be resolved by client id (I2). ccxt is imported lazily by the adapters, so this module
matches exception classes by name through the MRO instead of importing ccxt.
"""

from __future__ import annotations

from trading.errors import (
    AuthError,
    DuplicateClientId,
    ExchangeError,
    InsufficientFunds,
    NetworkError,
    RateLimited,
    Rejected,
    UnknownOutcome,
)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def translate(
    exc: BaseException, *, write: bool, client_id: str | None = None, code: str | None = None
) -> ExchangeError:
    """The port error for a ccxt exception; ``code`` is the exchange's own code if parsed."""
    names = _names(exc)
    text = str(exc)
    if "RateLimitExceeded" in names or "DDoSProtection" in names:
        return RateLimited(f"rate limited: {text}")
    if "NetworkError" in names or "RequestTimeout" in names:
        if write:
            return UnknownOutcome(f"no answer to a write ({type(exc).__name__}): {text}", client_id)
        return NetworkError(f"{type(exc).__name__}: {text}")
    if "AuthenticationError" in names or "PermissionDenied" in names:
        return AuthError(f"authentication refused: {text}")
    if "InsufficientFunds" in names:
        return InsufficientFunds(text, code)
    if "DuplicateOrderId" in names:
        return DuplicateClientId(text, code)
    if "BaseError" in names:
        return Rejected(text, code)
    raise exc
