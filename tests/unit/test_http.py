from mirror import __version__
from mirror._http import ACCEPT, user_agent


def test_user_agent_names_tool_version_and_contact() -> None:
    agent = user_agent("ops@example.org")
    assert agent.startswith(f"mirror/{__version__} ")
    assert "ops@example.org" in agent
    assert "; )" not in user_agent("")


def test_accept_prefers_json_with_q_values() -> None:
    kinds = [part.strip() for part in ACCEPT.split(",")]
    assert kinds[0] == "application/vnd.pypi.simple.v1+json"
    assert kinds[1].endswith(";q=0.2") and kinds[2] == "text/html;q=0.01"
