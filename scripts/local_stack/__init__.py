"""The local stack: the whole system on one machine, with no AWS account and no OpenAI key."""
