"""The curated public API: everything in ``__all__`` exists, and nothing else is promised."""

import docshift


def test_all_names_exist_and_are_documented() -> None:
    for name in docshift.__all__:
        obj = getattr(docshift, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_public_api_is_what_the_docs_promise() -> None:
    assert set(docshift.__all__) == {
        "ConversionError", "DocshiftError", "Interrupted", "LeaseLost", "Mapping",
        "MappingError", "RunAborted", "RunOptions", "RunResult", "SourceError", "TargetError",
        "UsageError", "VerifyOptions", "VerifyReport", "__version__", "generate_crm", "generate_kv",
        "load_mapping", "migrate", "parse_mapping", "rollback", "verify",
    }


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert docshift.__version__ == version("docshift")
