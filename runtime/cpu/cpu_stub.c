int trlc_cpu_placeholder;
