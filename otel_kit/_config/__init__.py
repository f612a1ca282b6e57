"""Configuration: the settings table (settings) and the SDK's own variables (sdk_environment)."""
