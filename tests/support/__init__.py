"""What the tests share: running bridges and brokers, clients, a browser, fakes."""
