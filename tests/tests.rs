mod tape;
