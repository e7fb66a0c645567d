"""The exchange error taxonomy the rest of the code relies on.

Adapters translate every exchange/library error into one of these; the executor decides what to
do from the class alone (retry a read, resolve an unknown write by client id, give up).
"""

from __future__ import annotations


class ExchangeError(Exception):
    retryable = False


class Retryable(ExchangeError):
    """Nothing happened; the same read may be tried again after a pause."""

    retryable = True


class NetworkError(Retryable):
    pass


class RateLimited(Retryable):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownOutcome(ExchangeError):
    """A write whose result we did not see (timeout): resolve by client id, never resend."""

    def __init__(self, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.client_id = client_id


class NotSent(ExchangeError):
    """Refused before anything left this process: the request failed a local check (a size
    that is not a multiple of the step, a client id the venue would not take, a symbol the
    adapter does not know, a price that is not positive, no credentials to sign with). The
    exchange never saw it, so there is no exchange code and nothing to look up by client id;
    sending the same request again is refused the same way."""

    def __init__(self, message: str) -> None:
        super().__init__(message if message.startswith("not sent") else f"not sent: {message}")
        self.reason = message


class Rejected(ExchangeError):
    """The exchange refused the request; ``code`` is the exchange's own code when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{message} (code {code})" if code else message)
        self.code = code
        self.reason = message


class StopWouldTrigger(Rejected):
    """The stop level is already passed (OKX 51278/51280: the trigger is on the wrong side of
    the last price, per OKX's error-code table)."""

    # the answer itself says the level is passed; see UnclearStopRefusal for one that does not
    certain = True


class UnclearStopRefusal(StopWouldTrigger):
    """A refusal that may mean "level passed" or something else: Hyperliquid's "Invalid TP/SL
    price" also answers a limit on the wrong side of the trigger, and has answered every trigger
    order of a coin during a venue incident. Only a fresh price beyond the level confirms it."""

    certain = False


class DuplicateClientId(Rejected):
    """The client id was used before (OKX 51016): the order may already exist; look it up."""


class InsufficientFunds(Rejected):
    pass


class AuthError(ExchangeError):
    pass
