"""What the tests stand on: fakes of the model APIs, real projects, a browser, the real CLIs; no tests."""
