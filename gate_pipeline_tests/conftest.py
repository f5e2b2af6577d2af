pytest_plugins = ["gate_pipeline_tests.s3_server"]
