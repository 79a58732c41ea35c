"""Records on the one DynamoDB table. Every item of a user lives in that user's partition (``USER#<id>``), so
one query answers "what does this user have" and no user's data shares a partition with another's."""
