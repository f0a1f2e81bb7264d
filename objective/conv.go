package objective

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ConvLayer is one convolutional layer of a convolutional network
// (Config.Conv): Channels output channels from Kernel×Kernel windows moved
// by Stride over the input padded with Padding zeros on each side, a ReLU,
// then, when Pool is 2 or more, max pooling over Pool×Pool windows moved by
// Pool (the windows that do not fit are dropped, as PyTorch's MaxPool2d
// does by default).
type ConvLayer struct {
	Channels int `json:"channels" yaml:"channels"`
	Kernel   int `json:"kernel" yaml:"kernel"`
	Stride   int `json:"stride,omitempty" yaml:"stride"` // 0 means 1
	Padding  int `json:"padding,omitempty" yaml:"padding"`
	Pool     int `json:"pool,omitempty" yaml:"pool"` // 0 or 1: none
}

func (l ConvLayer) stride() int { return max(l.Stride, 1) }

// pooled reports whether the layer ends with max pooling.
func (l ConvLayer) pooled() bool { return l.Pool >= 2 }

// LeNet is the convolutional stack of ConvDefault: two 5×5 layers of 16 and
// 32 channels, each padded to keep its input's size and pooled by 2
// (28×28 → 14×14 → 7×7).
var LeNet = []ConvLayer{
	{Channels: 16, Kernel: 5, Padding: 2, Pool: 2},
	{Channels: 32, Kernel: 5, Padding: 2, Pool: 2},
}

// FormatConv writes a convolutional stack in the syntax ParseConv reads,
// leaving out what is default: "16:5:p2:pool2,32:5:p2:pool2".
func FormatConv(layers []ConvLayer) string {
	parts := make([]string, len(layers))
	for i, l := range layers {
		s := fmt.Sprintf("%d:%d", l.Channels, l.Kernel)
		if l.Stride > 1 {
			s += fmt.Sprintf(":s%d", l.Stride)
		}
		if l.Padding > 0 {
			s += fmt.Sprintf(":p%d", l.Padding)
		}
		if l.pooled() {
			s += fmt.Sprintf(":pool%d", l.Pool)
		}
		parts[i] = s
	}
	return strings.Join(parts, ",")
}

// convSyntax explains ParseConv's syntax in its errors.
const convSyntax = "want comma-separated layers CHANNELS:KERNEL[:sSTRIDE][:pPADDING][:poolN], e.g. 16:5:p2:pool2,32:5:p2:pool2"

// ParseConv reads a convolutional stack: comma-separated layers, each
// CHANNELS:KERNEL followed by any of :sSTRIDE, :pPADDING and :poolN (max
// pooling over N×N windows after the ReLU). "16:5:p2:pool2,32:5:p2:pool2"
// is LeNet.
func ParseConv(s string) ([]ConvLayer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("convolutional layers: none given; %s", convSyntax)
	}
	var layers []ConvLayer
	for i, f := range strings.Split(s, ",") {
		fields := strings.Split(strings.TrimSpace(f), ":")
		bad := func(why string) error {
			return fmt.Errorf("convolutional layers: layer %d %q: %s; %s", i+1, strings.TrimSpace(f), why, convSyntax)
		}
		if len(fields) < 2 {
			return nil, bad("no kernel size")
		}
		var l ConvLayer
		var err error
		if l.Channels, err = strconv.Atoi(fields[0]); err != nil {
			return nil, bad(fmt.Sprintf("channels %q is not a whole number", fields[0]))
		}
		if l.Kernel, err = strconv.Atoi(fields[1]); err != nil {
			return nil, bad(fmt.Sprintf("kernel %q is not a whole number", fields[1]))
		}
		seen := map[string]bool{}
		for _, opt := range fields[2:] {
			var key string
			var dst *int
			switch {
			case strings.HasPrefix(opt, "pool"):
				key, dst = "pool", &l.Pool
			case strings.HasPrefix(opt, "s"):
				key, dst = "s", &l.Stride
			case strings.HasPrefix(opt, "p"):
				key, dst = "p", &l.Padding
			default:
				return nil, bad(fmt.Sprintf("unknown option %q", opt))
			}
			if seen[key] {
				return nil, bad(fmt.Sprintf("option %s given twice", key))
			}
			seen[key] = true
			if *dst, err = strconv.Atoi(strings.TrimPrefix(opt, key)); err != nil {
				return nil, bad(fmt.Sprintf("option %q is not %s followed by a whole number", opt, key))
			}
		}
		if err := l.Validate(); err != nil {
			return nil, bad(err.Error())
		}
		layers = append(layers, l)
	}
	return layers, nil
}

// Limits of a convolutional layer.
const (
	MaxKernel = 64
	MaxStride = 64
)

// Validate checks a layer alone; a Config's ValidateFor also checks it
// against its input.
func (l ConvLayer) Validate() error {
	switch {
	case l.Channels <= 0 || l.Channels > MaxWidth:
		return fmt.Errorf("channels %d not in [1, %d]", l.Channels, MaxWidth)
	case l.Kernel <= 0 || l.Kernel > MaxKernel:
		return fmt.Errorf("kernel %d not in [1, %d]", l.Kernel, MaxKernel)
	case l.Stride < 0 || l.Stride > MaxStride:
		return fmt.Errorf("stride %d not in [1, %d]", l.Stride, MaxStride)
	case l.Padding < 0 || l.Padding >= l.Kernel:
		return fmt.Errorf("padding %d not in [0, kernel−1 = %d]", l.Padding, l.Kernel-1)
	case l.Pool < 0 || l.Pool > MaxKernel:
		return fmt.Errorf("pool %d not in [0, %d]", l.Pool, MaxKernel)
	}
	return nil
}

// convShape is the geometry of one convolutional layer on its input.
type convShape struct {
	in       ImageShape // the layer's input
	conv     ImageShape // after the convolution (Channels × oh × ow)
	out      ImageShape // after the pooling, if any (else conv)
	k, s, p  int
	pool     int
	patch    int // k·k·in.Channels: the width of a row of the im2col matrix
	convRows int // conv.Height·conv.Width: rows of the im2col matrix per image
}

// convShapes returns the geometry of every layer of a stack on images of
// shape in, or an error that names the layer that does not fit.
func convShapes(in ImageShape, layers []ConvLayer) ([]convShape, error) {
	if in.IsZero() {
		return nil, errors.New("convolutional layers need images")
	}
	var shapes []convShape
	for i, l := range layers {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("convolutional layer %d: %w", i+1, err)
		}
		s := convShape{in: in, k: l.Kernel, s: l.stride(), p: l.Padding, pool: 1}
		oh := (in.Height+2*l.Padding-l.Kernel)/s.s + 1
		ow := (in.Width+2*l.Padding-l.Kernel)/s.s + 1
		if in.Height+2*l.Padding < l.Kernel || in.Width+2*l.Padding < l.Kernel {
			return nil, fmt.Errorf("convolutional layer %d: a %d×%d kernel does not fit its %s input padded by %d", i+1, l.Kernel, l.Kernel, in, l.Padding)
		}
		s.conv = ImageShape{Channels: l.Channels, Height: oh, Width: ow}
		s.out = s.conv
		if l.pooled() {
			if oh < l.Pool || ow < l.Pool {
				return nil, fmt.Errorf("convolutional layer %d: pooling by %d does not fit its %s output", i+1, l.Pool, s.conv)
			}
			s.pool = l.Pool
			s.out = ImageShape{Channels: l.Channels, Height: oh / l.Pool, Width: ow / l.Pool}
		}
		s.patch = l.Kernel * l.Kernel * in.Channels
		s.convRows = oh * ow
		shapes = append(shapes, s)
		in = s.out
	}
	return shapes, nil
}

// KnownImage returns the shape of the images of the dataset named, when
// it is known before the data are loaded (mnist's); idx datasets say
// theirs when loaded (Data.Image).
func KnownImage(name string) (ImageShape, bool) {
	if name == kindMNIST {
		return ImageShape{Channels: 1, Height: mnistRows, Width: mnistCols}, true
	}
	return ImageShape{}, false
}

// CheckConv checks that the convolutional layers fit images of shape in
// and returns the shape of their last feature map.
func CheckConv(in ImageShape, layers []ConvLayer) (ImageShape, error) {
	shapes, err := convShapes(in, layers)
	if err != nil {
		return ImageShape{}, err
	}
	if len(shapes) == 0 {
		return in, nil
	}
	return shapes[len(shapes)-1].out, nil
}

// ImageDataset reports whether the dataset named (as in DatasetSpec.Name)
// holds images, which a convolutional network needs.
func ImageDataset(name string) bool {
	return name == kindMNIST || strings.HasPrefix(name, "idx:")
}

// size is the number of values of an image of shape s.
func (s ImageShape) size() int { return s.Channels * s.Height * s.Width }
