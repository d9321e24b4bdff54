int trlc_io_placeholder;
