"""The local stack's patch of moto's transactions: a failed transaction still writes nothing, without moto copying
the whole table to roll it back (what made every claim slower as the local table grew)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from scripts.local_stack.aws.moto_patches import roll_back_transactions_by_item, serialise_moto_dynamodb
from tests.conftest import REGION, TABLE_NAME


@pytest.fixture
def patched(ddb_table: Any) -> Any:
    # Process-wide and idempotent, as the local stack applies them (each only makes moto more faithful).
    serialise_moto_dynamodb()
    roll_back_transactions_by_item()
    return ddb_table


def _put(table_name: str, sk: str, **values: Any) -> dict[str, Any]:
    return {"Put": {"TableName": table_name, "Item": {"pk": "USER#a", "sk": sk, **values}}}


def _must_not_exist(table_name: str, sk: str) -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": table_name,
            "Key": {"pk": "USER#a", "sk": sk},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def test_a_failed_transaction_writes_nothing_and_copies_no_table(patched: Any) -> None:
    table = patched
    table.put_item(Item={"pk": "USER#a", "sk": "OLD", "n": 1})
    table.put_item(Item={"pk": "USER#a", "sk": "TAKEN", "n": 0})
    backend_table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[TABLE_NAME]

    with pytest.raises(ClientError) as refused:
        table.meta.client.transact_write_items(
            TransactItems=[
                _put(TABLE_NAME, "NEW", n=1),  # a new item: must be gone again
                {
                    "Update": {  # an existing item changed in place by moto: must be as it was
                        "TableName": TABLE_NAME,
                        "Key": {"pk": "USER#a", "sk": "OLD"},
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": 2},
                    }
                },
                _must_not_exist(TABLE_NAME, "TAKEN"),  # fails
            ]
        )

    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in table.get_item(Key={"pk": "USER#a", "sk": "NEW"}, ConsistentRead=True)
    assert table.get_item(Key={"pk": "USER#a", "sk": "OLD"}, ConsistentRead=True)["Item"]["n"] == 1
    # moto's own rollback swaps in a deep copy of the table taken before the transaction.
    assert dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[TABLE_NAME] is backend_table


def test_a_transaction_that_passes_writes_every_item(patched: Any) -> None:
    table = patched
    table.meta.client.transact_write_items(
        TransactItems=[_put(TABLE_NAME, "ONE", n=1), _put(TABLE_NAME, "TWO", n=2), _must_not_exist(TABLE_NAME, "X")]
    )

    assert table.get_item(Key={"pk": "USER#a", "sk": "ONE"}, ConsistentRead=True)["Item"]["n"] == 1
    assert table.get_item(Key={"pk": "USER#a", "sk": "TWO"}, ConsistentRead=True)["Item"]["n"] == 2
