import pytest

from monitor.domain.smtp_replies import rejects_address


@pytest.mark.parametrize(
    ("code", "detail", "expected"),
    [
        (550, "5.1.1 <x@kommun.se>: Recipient address rejected: User unknown", True),
        (550, "Requested action not taken: mailbox unavailable", True),
        (553, "5.1.3 Bad recipient address syntax", True),
        (550, "5.7.1 Relaying denied", False),
        (554, "5.7.1 Message rejected as spam", False),
        (450, "4.1.1 <x@kommun.se>: Recipient address rejected: try later", False),
        (530, "5.7.0 Authentication required", False),
        (None, None, False),
    ],
)
def test_only_permanent_addressing_rejections_blame_the_target(
    code: int | None, detail: str | None, expected: bool
) -> None:
    assert rejects_address(code, detail) is expected
