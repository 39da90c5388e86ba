"""Small database helpers every layer may use."""



IDS_PER_QUERY = 5000  # SQLite caps the parameters of one statement (32,766)


def values_by_id(queryset, key: str, ids: list[int], field: str) -> dict:
    """{key: field} of the rows whose `key` is one of ids, one query per 5,000 ids."""
    found = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        found.update(queryset.filter(**{f"{key}__in": chunk}).values_list(key, field))
    return found
