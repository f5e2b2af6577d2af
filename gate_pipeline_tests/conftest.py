pytest_plugins = ["gate_pipeline_tests.s3_server", "gate_pipeline_tests.postgres_server"]
