from aios.store.migrate import available_migrations, redact_url


def test_migrations_are_ordered_and_unique() -> None:
    versions = [migration.version for migration in available_migrations()]
    assert versions, "the package must ship its migrations"
    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://me:pw@h:1/db") == "postgresql://me:***@h:1/db"
    assert redact_url("postgresql://me@h:1/db") == "postgresql://me@h:1/db"
