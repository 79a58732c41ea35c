"""AWS on this machine: moto's server (:mod:`.moto_server`), the fixes that make it behave like AWS where the
product depends on it (:mod:`.moto_patches`), and the resources the CDK stack declares (:mod:`.resources`)."""
