"""E-mail over SMTP (aiosmtplib): STARTTLS or implicit TLS, optional login, all from settings."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from sitewright_contracts.models import one_email_address

from .channels import Notice, SendResult, Verdict
from .config import NotifierSettings
from .messages import email_text


class EmailChannel:
    name = "email"

    def __init__(self, settings: NotifierSettings):
        self.settings = settings

    def message(self, notice: Notice) -> EmailMessage:
        subject, text = email_text(notice.payload)
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = notice.target
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        # The same Message-ID on every try lets mail systems drop a copy resent after a lost reply.
        msg["Message-ID"] = f"<{notice.key.replace(':', '.')}@sitewright>"
        msg.set_content(text)
        return msg

    async def send(self, notice: Notice) -> SendResult:
        s = self.settings
        if not s.smtp_host:
            return SendResult(
                "failed", error="e-mail is not configured on this deployment", detail="set SITEWRIGHT_SMTP_HOST"
            )
        try:
            one_email_address(notice.target)  # checked at the API too; an older event may hold anything
        except ValueError as exc:
            return SendResult("failed", error=str(exc))  # final: no retry makes it an address
        try:
            await aiosmtplib.send(
                self.message(notice),
                hostname=s.smtp_host,
                port=s.smtp_port,
                timeout=s.smtp_timeout_s,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_tls,
                start_tls=s.smtp_starttls if not s.smtp_tls else False,
                cert_bundle=s.smtp_ca_file,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            verdict: Verdict = "failed" if all(code >= 500 for code in codes) else "retry"
            reason = exc.recipients[0].message if exc.recipients else str(exc)
            return SendResult(
                verdict,
                codes[0] if codes else None,
                f"the mail server refused {notice.target}",
                detail=f"{s.smtp_host}:{s.smtp_port} refused {notice.target}: {reason}",
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            # The deployment's credentials are wrong: retried, so mail goes out once an operator fixes them.
            return SendResult(
                "retry",
                exc.code,
                "the mail server refused this deployment's login",
                detail=f"SMTP login failed ({exc.code} {exc.message}); check SITEWRIGHT_SMTP_USERNAME/PASSWORD",
            )
        except aiosmtplib.SMTPResponseException as exc:
            return SendResult(
                "failed" if exc.code >= 500 else "retry",
                exc.code,
                f"the mail server refused the message (SMTP {exc.code})",
                detail=f"{s.smtp_host}:{s.smtp_port}: SMTP {exc.code}: {exc.message}",
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return SendResult(
                "retry", error="the mail server could not be reached", detail=f"{s.smtp_host}:{s.smtp_port}: {exc}"
            )
        return SendResult("sent", 250)
