set terminal pngcairo size 1100,420 font 'sans,10'
set output 'conntable.png'
set multiplot layout 1,2 title 'Connection table: established-flow packet through xvs\_xdp (BPF\_PROG\_TEST\_RUN)'
set logscale x
set grid
set key top left
set yrange [0:*]
set xlabel 'entries'
set title 'ns per packet (median, bars: min-max)'
plot 'conntable.dat' using 1:2:3:4 with yerrorlines title 'same flow repeated', '' using 1:5:6:7 with yerrorlines title 'random flows of the table'
set title 'kernel memory (memlock), MiB: table + NAT index'
plot 'conntable.dat' using 1:8 with linespoints title 'MiB'
unset multiplot
