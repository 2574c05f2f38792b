// Service tests are written next.
