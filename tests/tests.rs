mod gpu;
