"""notifier: sends the low-balance email, here to a local mail folder (one file per message).

The file is named after the transaction that caused the alert, so a redelivered alert writes
the same file again instead of a second email.
"""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path

from nerve import Service
from nerve.demo.finance.events import LowBalance

notifier = Service("notifier", description="Emails users about low balances", owner="customer-team")


def mail_dir() -> Path:
    return Path(os.environ.get("NERVE_DEMO_MAIL_DIR", ".nerve/mail"))


@notifier.on(LowBalance, idempotent=True)
def send(alert: LowBalance) -> None:
    message = EmailMessage()
    message["To"] = alert.email
    message["From"] = "alerts@nerve.example"
    message["Subject"] = f"Your balance on {alert.account_id} is low"
    message["X-Correlation-Id"] = alert.meta.correlation_id or alert.meta.id
    message.set_content(
        f"Your balance is {alert.balance}, below your threshold of {alert.threshold}.\n"
        f"(transaction {alert.transaction_id})\n"
    )
    folder = mail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{alert.transaction_id}.eml"
    partial = target.with_suffix(".tmp")
    partial.write_bytes(bytes(message))
    partial.replace(target)  # whole or not at all
